//! Browser tests of the generator (feature `model`; `crate/web/scripts/test-browser.sh
//! --features model`): the shipped default model and the python pack on the CPU backend
//! (text equal to native `ward generate`, `tests/data/expected_cpu.json`) and on WebGPU
//! (SwiftShader in headless Chromium); bad inputs as `WardError`s with the generator still
//! usable; and a benchmark that prints first-step latency, tokens/s and guard overhead.
#![cfg(all(target_arch = "wasm32", feature = "model"))]

mod common;

use common::browser::*;
use common::*;
use ward_web::js::Policy;
use ward_web::js_generator::Generator;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &[u8] = include_bytes!("../../../models/ward-tiny-code/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../../models/ward-tiny-code/model.safetensors");
const EXPECTED: &str = include_str!("data/expected_cpu.json");

async fn generator(backend: &str) -> Generator {
    pause().await;
    let g = Generator::create(
        CONFIG.to_vec(),
        WEIGHTS.to_vec(),
        TOKENIZER_JSON.as_bytes().to_vec(),
        backend.to_string(),
        Some("ward-tiny-code".into()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    pause().await;
    g
}

fn request(prompt: &str, seed: u64) -> JsValue {
    let o = js_sys::Object::new();
    js_sys::Reflect::set(&o, &"prompt".into(), &prompt.into()).unwrap();
    js_sys::Reflect::set(&o, &"seed".into(), &(seed as f64).into()).unwrap();
    o.into()
}

fn now() -> f64 {
    ward_web::clock::now_ms()
}

/// Runs a whole generation; returns (result, first-step ms, total ms).
async fn run(g: &Generator, policy: &Policy, req: JsValue) -> (JsValue, f64, f64) {
    let t0 = now();
    g.start(policy, req, None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mut first = None;
    loop {
        pause().await;
        let ev = g.step().await.unwrap_or_else(|e| panic!("{e:?}"));
        first.get_or_insert_with(|| now() - t0);
        if ev.is_undefined() {
            break;
        }
    }
    (g.result().unwrap(), first.unwrap_or(0.0), now() - t0)
}

fn expected() -> (String, u64, String) {
    let v: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    (
        v["request"]["prompt"].as_str().unwrap().to_string(),
        v["request"]["seed"].as_u64().unwrap(),
        v["text"].as_str().unwrap().to_string(),
    )
}

fn enforced_findings(result: &JsValue) -> f64 {
    get(&get(result, "certificate"), "enforced_findings")
        .as_f64()
        .unwrap()
}

#[wasm_bindgen_test]
async fn cpu_generation_matches_native_and_is_clean() {
    let p = python().await;
    let g = generator("cpu").await;
    assert_eq!(
        get(&g.backend().unwrap(), "backend").as_string().as_deref(),
        Some("cpu")
    );
    let (prompt, seed, text) = expected();
    // The lift ahead of time (what the web app's worker does at init) changes nothing in
    // the output.
    let lift_ms = g.prepare(&p).unwrap_or_else(|e| panic!("{e:?}"));
    pause().await;
    console_log!("cpu: prepare (lift) {lift_ms:.0} ms");
    let (r, first, total) = run(&g, &p, request(&prompt, seed)).await;
    assert_eq!(
        get(&r, "text").as_string().unwrap(),
        text,
        "wasm CPU text differs from native"
    );
    assert_eq!(enforced_findings(&r), 0.0);
    assert_eq!(
        get(&get(&r, "certificate"), "verdict")
            .as_string()
            .as_deref(),
        Some("clean")
    );
    let sarif = g.sarif().unwrap();
    assert!(sarif.contains("\"version\": \"2.1.0\""));
    console_log!("cpu: first step {first:.0} ms, whole generation {total:.0} ms");
}

/// The lift artefact of `p` for the default model's tokenizer (what `ward compile-policy
/// --lift-tokenizer … --lift-out …` writes), built here.
fn rows_artefact(p: &Policy) -> Vec<u8> {
    let vocab = ward_guard::vocab::from_tokenizer_json(TOKENIZER_JSON).unwrap();
    ward_guard::TokenPolicy::new(p.core().policy.clone(), std::sync::Arc::new(vocab))
        .rows_artefact()
}

#[wasm_bindgen_test]
async fn rows_from_a_lift_artefact_give_the_same_text_and_bad_ones_throw() {
    let files = shipped_files();
    let artefact = ward_web::policy::PolicyCore::from_files(&files, "python")
        .unwrap()
        .to_artefact(&files, "python");
    let p = Policy::from_artefact(&artefact).unwrap_or_else(|e| panic!("{e:?}"));
    let rows = rows_artefact(&p);
    pause().await;
    // A corrupt one and one of another policy: `artefact` errors, nothing installed.
    let g = generator("cpu").await;
    let mut bad = rows.clone();
    let k = bad.len() / 2;
    bad[k] ^= 1;
    let Err(e) = g.prepare_with_rows(&p, &bad) else {
        panic!("a corrupt lift artefact was accepted")
    };
    assert_eq!(ward_kind(&e), "artefact");
    assert!(format!("{:?}", get(&e, "message")).contains("checksum"));
    let base_files = js_sys::Object::new();
    for (k, v) in &files {
        js_sys::Reflect::set(&base_files, &k.into(), &v.into()).unwrap();
    }
    let base = Policy::new(base_files.into(), "base").unwrap_or_else(|e| panic!("{e:?}"));
    let Err(e) = g.prepare_with_rows(&base, &rows) else {
        panic!("the python pack's rows were accepted for the base pack")
    };
    assert_eq!(ward_kind(&e), "artefact");
    // The right one: the same text as native.
    let ms = g
        .prepare_with_rows(&p, &rows)
        .unwrap_or_else(|e| panic!("{e:?}"));
    console_log!(
        "cpu: rows loaded from the lift artefact ({} bytes) in {ms:.0} ms",
        rows.len()
    );
    let (prompt, seed, text) = expected();
    let (r, first, _) = run(&g, &p, request(&prompt, seed)).await;
    assert_eq!(get(&r, "text").as_string().unwrap(), text);
    assert_eq!(enforced_findings(&r), 0.0);
    console_log!("cpu: first step after the loaded rows {first:.0} ms");
}

#[wasm_bindgen_test]
async fn webgpu_generation_is_clean() {
    let p = python().await;
    let g = generator("webgpu").await;
    let b = g.backend().unwrap();
    assert_eq!(get(&b, "backend").as_string().as_deref(), Some("webgpu"));
    let adapter = get(&b, "adapter").as_string().unwrap();
    console_log!("webgpu adapter: {adapter}");
    let (prompt, seed, text) = expected();
    let (r, first, total) = run(&g, &p, request(&prompt, seed)).await;
    assert_eq!(enforced_findings(&r), 0.0);
    let wtext = get(&r, "text").as_string().unwrap();
    console_log!(
        "webgpu: first step {first:.0} ms, whole generation {total:.0} ms; same text as the CPU: {}",
        wtext == text
    );
    // `auto` on a software adapter (SwiftShader here) takes the CPU and says why.
    let a = generator("auto").await;
    let b = a.backend().unwrap();
    if adapter.contains("Cpu") {
        assert_eq!(get(&b, "backend").as_string().as_deref(), Some("cpu"));
        let reason = get(&b, "reason").as_string().unwrap();
        assert!(reason.contains("software"), "{reason}");
    }
}

fn ward_kind(e: &JsValue) -> String {
    let err: js_sys::Error = e.clone().dyn_into().expect("a JS Error");
    assert_eq!(err.name().as_string().as_deref(), Some("WardError"));
    get(e, "kind").as_string().unwrap()
}

#[wasm_bindgen_test]
async fn bad_inputs_are_ward_errors_and_the_generator_stays_usable() {
    // Corrupt safetensors.
    let mut bad = WEIGHTS.to_vec();
    bad.truncate(1000);
    let Err(e) = Generator::create(
        CONFIG.to_vec(),
        bad,
        TOKENIZER_JSON.as_bytes().to_vec(),
        "cpu".into(),
        None,
    )
    .await
    else {
        panic!("truncated weights accepted")
    };
    assert_eq!(ward_kind(&e), "model");
    pause().await;
    let msg = js_sys::Error::from(e).message().as_string().unwrap();
    assert!(msg.contains("safetensors"), "{msg}");
    // A tokenizer that does not match the config.
    let cfg = String::from_utf8(CONFIG.to_vec())
        .unwrap()
        .replace("8192", "8000");
    let Err(e) = Generator::create(
        cfg.into_bytes(),
        WEIGHTS.to_vec(),
        TOKENIZER_JSON.as_bytes().to_vec(),
        "cpu".into(),
        None,
    )
    .await
    else {
        panic!("mismatched tokenizer accepted")
    };
    assert_eq!(ward_kind(&e), "tokenizer");
    pause().await;
    let msg = js_sys::Error::from(e).message().as_string().unwrap();
    assert!(msg.contains("8192") && msg.contains("8000"), "{msg}");
    // Bad backend name.
    let Err(e) = Generator::create(
        CONFIG.to_vec(),
        WEIGHTS.to_vec(),
        TOKENIZER_JSON.as_bytes().to_vec(),
        "tpu".into(),
        None,
    )
    .await
    else {
        panic!()
    };
    assert_eq!(ward_kind(&e), "argument");

    let p = python().await;
    let g = generator("cpu").await;
    // A prompt that already violates.
    let Err(e) = g.start(&p, request("x = eval(user)\n<|hole:4|>", 1), None) else {
        panic!("violating prompt accepted")
    };
    assert_eq!(ward_kind(&e), "prompt_violates");
    assert_eq!(get(&e, "rule").as_string().as_deref(), Some("python.eval"));
    assert!(get(&e, "span").is_object());
    // A malformed request and a malformed hole marker.
    let o = js_sys::Object::new();
    js_sys::Reflect::set(&o, &"prompt".into(), &"x = ".into()).unwrap();
    js_sys::Reflect::set(&o, &"stepz".into(), &3.into()).unwrap();
    let Err(e) = g.start(&p, o.into(), None) else {
        panic!("unknown field accepted")
    };
    assert_eq!(ward_kind(&e), "request");
    let Err(e) = g.start(&p, request("x = <|hole:|>", 1), None) else {
        panic!("bad hole accepted")
    };
    assert_eq!(ward_kind(&e), "prompt");
    // Malformed YAML does not even make a Policy.
    let o = js_sys::Object::new();
    js_sys::Reflect::set(&o, &"p.yaml".into(), &"rules: [\n".into()).unwrap();
    assert!(Policy::new(o.into(), "p.yaml").is_err());
    // Still usable: a clean generation after all that.
    let (r, _, _) = run(
        &g,
        &p,
        request("def add(a, b):\n    return <|hole:6|>\n", 3),
    )
    .await;
    assert_eq!(enforced_findings(&r), 0.0);
    // Cancel: later steps give undefined.
    g.start(&p, request("x = <|hole:24|>\n", 5), None).unwrap();
    let _ = g.step().await.unwrap();
    g.cancel();
    assert!(g.step().await.unwrap().is_undefined());
}

/// One benchmark round on `backend`: the start-up a user waits for once the assets are in
/// memory (the python pack from its artefact, the model from bytes, with `rows` the token
/// rows from the lift artefact, then start and the first step), then the whole generation
/// and a second one. Same request as tests/data/expected_cpu.json (16 tokens, 8 steps).
async fn bench(backend: &str, artefact: &[u8], rows: Option<&[u8]>) {
    let (prompt, seed, _) = expected();
    let t0 = now();
    let p = Policy::from_artefact(artefact).unwrap_or_else(|e| panic!("{e:?}"));
    let t_policy = now() - t0;
    let g = generator(backend).await;
    let t_model = now() - t0 - t_policy;
    let mut name = get(&g.backend().unwrap(), "backend").as_string().unwrap();
    let t1 = now();
    if let Some(rows) = rows {
        g.prepare_with_rows(&p, rows)
            .unwrap_or_else(|e| panic!("{e:?}"));
        name.push_str(" (rows from the lift artefact)");
    }
    let t_rows = now() - t1;
    let (r, first, total) = run(&g, &p, request(&prompt, seed)).await;
    let first = first + t_rows;
    let t = get(&r, "timings");
    let model_ms = get(&t, "model_ms").as_f64().unwrap();
    let guard_ms = get(&t, "guard_ms").as_f64().unwrap();
    let tokens = get(&r, "tokens").as_f64().unwrap();
    console_log!(
        "bench {name}: artefact load {t_policy:.0} ms, model load {t_model:.0} ms, start + first step {first:.0} ms (rows {t_rows:.0} ms; bytes to first step {:.0} ms); {tokens} tokens in {total:.0} ms ({:.1} tokens/s), model {model_ms:.0} ms, guard {guard_ms:.0} ms (overhead {:.3})",
        t_policy + t_model + first,
        tokens / (total / 1e3),
        guard_ms / model_ms.max(1e-9)
    );
    // A second generation on the same generator and policy: the engine is kept.
    let (_, first2, total2) = run(&g, &p, request(&prompt, seed)).await;
    console_log!("bench {name}: second generation: first step {first2:.0} ms, {tokens} tokens in {total2:.0} ms ({:.1} tokens/s)", tokens / (total2 / 1e3));
}

/// The python pack compiled here and its artefact (compiling it does not run the artefact
/// loader, so that the benchmark's load is its first).
fn python_artefact() -> (ward_web::policy::PolicyCore, Vec<u8>) {
    let files = shipped_files();
    let core = ward_web::policy::PolicyCore::from_files(&files, "python").unwrap();
    let artefact = core.to_artefact(&files, "python");
    (core, artefact)
}

#[wasm_bindgen_test]
#[ignore = "a benchmark: crate/web/scripts/test-browser.sh --features model --test model -- --include-ignored --nocapture benchmark_generate"]
async fn benchmark_generate() {
    // The figures of `ward bench generate` for the backends here; the token rows are built
    // by the first start (the lift), as for a policy without a lift artefact.
    let (_, artefact) = python_artefact();
    for backend in ["cpu", "webgpu"] {
        bench(backend, &artefact, None).await;
    }
}

#[wasm_bindgen_test]
#[ignore = "a benchmark: crate/web/scripts/test-browser.sh --features model --test model -- --include-ignored --nocapture benchmark_lift_rows"]
async fn benchmark_lift_rows() {
    // The same on the CPU with the rows loaded from the lift artefact (what the web app does
    // with `pack.<model>.wardlift`), built here from the policy compiled from the same files
    // (the same modules as the artefact's).
    let (core, artefact) = python_artefact();
    let vocab = ward_guard::vocab::from_tokenizer_json(TOKENIZER_JSON).unwrap();
    let rows = ward_guard::TokenPolicy::new(core.policy.clone(), std::sync::Arc::new(vocab))
        .rows_artefact();
    bench("cpu", &artefact, Some(&rows)).await;
}

#[wasm_bindgen_test]
async fn subtle_crypto_digest_equals_the_certificate_digest() {
    // The generator hashes the model with the browser's SubtleCrypto: the same digest as the
    // sampler's own SHA-256 (what native `ward generate` writes into the certificate).
    let parts: [&[u8]; 2] = [CONFIG, WEIGHTS];
    let web = ward_web::js_generator::subtle_sha256_hex(&parts)
        .await
        .expect("SubtleCrypto");
    assert_eq!(web, ward_sampler::certificate::sha256_hex(&parts));
    let empty: [&[u8]; 2] = [b"", b"x"];
    assert_eq!(
        ward_web::js_generator::subtle_sha256_hex(&empty)
            .await
            .unwrap(),
        ward_sampler::certificate::sha256_hex(&empty)
    );
}

#[wasm_bindgen_test]
async fn oracle_adversary_is_blocked_on_cpu() {
    // The model is made to prefer `shell=True)` in the hole; the guard must block it.
    let p = python().await;
    let g = generator("cpu").await;
    g.start(
        &p,
        request("import subprocess\nsubprocess.run(cmd, <|hole:8|>\n", 1),
        Some("shell=True)".into()),
    )
    .unwrap();
    while !g.step().await.unwrap().is_undefined() {
        pause().await;
    }
    let r = g.result().unwrap();
    assert_eq!(enforced_findings(&r), 0.0);
    let blocked = get(&r, "blocked_candidates").as_f64().unwrap();
    console_log!(
        "oracle: {blocked} candidates blocked, text {:?}",
        get(&r, "text").as_string()
    );
    assert!(blocked > 0.0, "the oracle's shell=True was never blocked");
}
