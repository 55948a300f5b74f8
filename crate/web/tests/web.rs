//! Browser tests (wasm-bindgen-test in headless Chromium; `crate/web/scripts/test-browser.sh`):
//! the JS surface (`Policy`, `TokenGuard`, `GuardedCanvas`, `WardError` exceptions) and the
//! guard-only adversarial run on the real python pack and the real tokenizer, in wasm.
#![cfg(target_arch = "wasm32")]

mod common;

use common::browser::*;
use common::*;
use ward_web::guard::TokenGuardCore;
use ward_web::js::{Policy, TokenGuard};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn policy_compiles_explains_and_checks() {
    pause().await;
    let p = python().await;
    assert_eq!(p.name(), "python");
    console_log!("python pack compiled in wasm in {:.1} ms", p.load_ms());
    let e = p.explain().unwrap();
    assert_eq!(get(&e, "pack").as_string().as_deref(), Some("python"));
    let rules: js_sys::Array = get(&e, "rules").into();
    assert!(rules.length() > 30);
    let f: js_sys::Array = p.check("x = eval(user)\n").unwrap().into();
    assert_eq!(f.length(), 1);
    let f0 = f.get(0);
    assert_eq!(
        get(&f0, "rule_id").as_string().as_deref(),
        Some("python.eval")
    );
    assert_eq!(get(&f0, "line").as_f64(), Some(1.0));
    assert!(p.is_clean("print('ok')\n"));
}

#[wasm_bindgen_test]
async fn files_may_be_a_map() {
    pause().await;
    let m = js_sys::Map::new();
    for (k, v) in shipped_files() {
        m.set(&k.into(), &v.into());
    }
    // The small base pack: what is under test is reading a Map, not compiling python again.
    assert_eq!(Policy::new(m.into(), "base").unwrap().name(), "base");
}

fn ward_error(e: JsValue) -> (String, String, JsValue) {
    let err: js_sys::Error = e.clone().dyn_into().expect("a JS Error");
    assert_eq!(err.name().as_string().as_deref(), Some("WardError"));
    (
        err.message().as_string().unwrap(),
        get(&e, "kind").as_string().unwrap(),
        e,
    )
}

#[wasm_bindgen_test]
async fn compile_errors_are_js_exceptions_naming_rule_and_column() {
    pause().await;
    let o = js_sys::Object::new();
    let yaml = "pack: p\nrules:\n  - id: bad.look\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'foo(?=bar)'\n";
    js_sys::Reflect::set(&o, &"p/pack.yaml".into(), &yaml.into()).unwrap();
    let Err(e) = Policy::new(o.into(), "p") else {
        panic!("compiled a look-ahead")
    };
    let (msg, kind, e) = ward_error(e);
    assert_eq!(kind, "policy");
    assert!(
        msg.contains("bad.look") && msg.contains("column 4"),
        "{msg}"
    );
    assert_eq!(get(&e, "rule").as_string().as_deref(), Some("bad.look"));
    assert!(get(&e, "column").as_f64().is_some());
    // Malformed YAML names the file and line.
    let o = js_sys::Object::new();
    js_sys::Reflect::set(&o, &"q.yaml".into(), &"rules: [\n - id: x\n".into()).unwrap();
    let Err(e) = Policy::new(o.into(), "q.yaml") else {
        panic!("malformed YAML accepted")
    };
    let (msg, kind, e) = ward_error(e);
    assert_eq!(kind, "policy");
    assert!(msg.contains("q.yaml"), "{msg}");
    assert!(get(&e, "line").as_f64().is_some());
    // Not an object at all.
    let Err(e) = Policy::new(JsValue::from(3), "p") else {
        panic!()
    };
    assert_eq!(ward_error(e).1, "argument");
}

#[wasm_bindgen_test]
async fn token_guard_refuses_and_explains() {
    pause().await;
    let p = python().await;
    pause().await;
    let tg = TokenGuard::new(&p, TOKENIZER_JSON).unwrap();
    pause().await;
    console_log!(
        "lifted to {} tokens in {:.1} ms",
        tg.vocab_size(),
        tg.lift_ms()
    );
    let ids = tg.encode("x = eval(").unwrap();
    let arg = tg.encode("user").unwrap()[0];
    let h = ids.len();
    let mut c = tg.canvas(&ids, 4, &[]).unwrap();
    assert!(!c.allows(h, arg));
    let Err(e) = c.commit(h, arg) else {
        panic!("forbidden commit accepted")
    };
    let (msg, kind, e) = ward_error(e);
    assert_eq!(kind, "forbidden");
    assert!(msg.contains("python.eval"), "{msg}");
    let ids_js: js_sys::Array = get(&e, "rule_ids").into();
    assert_eq!(ids_js.get(0).as_string().as_deref(), Some("python.eval"));
    let bad = tg.encode("y = eval(z)\n").unwrap();
    let Err(e) = tg.canvas(&bad, 2, &[]) else {
        panic!("violating prompt accepted")
    };
    let (_, kind, e) = ward_error(e);
    assert_eq!(kind, "prompt_violates");
    assert!(get(&e, "span").is_object());
    let Err(e) = TokenGuard::new(&p, "not json") else {
        panic!()
    };
    assert_eq!(ward_error(e).1, "tokenizer");
}

#[wasm_bindgen_test]
async fn adversary_in_the_browser_gets_no_finding() {
    pause().await;
    let p = python().await;
    pause().await;
    let tg = TokenGuardCore::new(p.core().policy.clone(), TOKENIZER_JSON).unwrap();
    pause().await;
    let attack = attack_tokens(&tg);
    let mut refused = 0;
    let mut commits = 0;
    for (i, prompt) in PROMPTS.iter().enumerate() {
        pause().await;
        let run = adversarial_run(&tg, &attack, prompt, 24, i as u64 + 1)
            .unwrap_or_else(|e| panic!("{prompt:?}: {e}"));
        refused += run.refused;
        commits += run.commits;
        let findings = tg.tp.policy().check(run.text.as_bytes());
        assert!(
            findings.iter().all(|f| !f.enforced),
            "{:?}: {findings:?}",
            run.text
        );
    }
    console_log!(
        "adversary: {} prompts, {commits} commits, {refused} forbidden commits refused, 0 findings",
        PROMPTS.len()
    );
    assert!(refused > 0);
}

#[wasm_bindgen_test]
async fn artefact_loads_in_the_browser_and_bad_ones_throw() {
    pause().await;
    let p = python().await;
    pause().await;
    let bytes = p.core().to_artefact(&shipped_files(), "python");
    let q = Policy::from_artefact(&bytes).unwrap_or_else(|e| panic!("{e:?}"));
    pause().await;
    console_log!(
        "python pack: compiled in {:.1} ms, artefact of {} bytes loaded in {:.1} ms",
        p.load_ms(),
        bytes.len(),
        q.load_ms()
    );
    let f: js_sys::Array = q.check("x = eval(user)\n").unwrap().into();
    assert_eq!(f.length(), 1);
    let mut bad = bytes.clone();
    bad[8] = 7; // another format version
    let Err(e) = Policy::from_artefact(&bad) else {
        panic!("other version accepted")
    };
    let (msg, kind, _) = ward_error(e);
    assert_eq!(kind, "artefact");
    assert!(msg.contains("format version 7"), "{msg}");
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 3] ^= 0xff; // a flipped byte
    let Err(e) = Policy::from_artefact(&bad) else {
        panic!("corrupt artefact accepted")
    };
    let (msg, kind, _) = ward_error(e);
    assert_eq!(kind, "artefact");
    assert!(msg.contains("checksum"), "{msg}");
}
