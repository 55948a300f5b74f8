//! Helpers of the browser tests (`tests/web.rs`, `tests/model.rs`): property access, a yield
//! to the page, and the python pack compiled once per test binary.
//!
//! chromedriver gives up on a page whose renderer does not answer for about 30 s, and
//! wasm-bindgen-test runs the tests of a binary one after the other on one page, with only
//! microtasks between them: a test that works for long, or several in a row, must give the page
//! back now and then ([`pause`]), and heavy set-up is shared ([`python`]).

use ward_web::js::Policy;
use wasm_bindgen::prelude::*;

use super::shipped_files;

/// `v[k]` (undefined when absent).
pub fn get(v: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(v, &k.into()).unwrap()
}

/// The shipped packs as a JS object (path → YAML text).
pub fn files_js() -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in shipped_files() {
        js_sys::Reflect::set(&o, &k.into(), &v.into()).unwrap();
    }
    o.into()
}

/// Gives the page back to the browser for a moment (a `setTimeout(0)` macrotask).
pub async fn pause() {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let set_timeout: js_sys::Function =
            js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
                .unwrap()
                .into();
        set_timeout
            .call2(&JsValue::NULL, &resolve, &0.into())
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(p).await.unwrap();
}

thread_local! {
    static PYTHON: std::cell::OnceCell<Policy> = const { std::cell::OnceCell::new() };
}

/// The shipped python pack, compiled in wasm on first use (5–7 s here) and shared by the
/// tests after that; the page is given back before and after the compile.
pub async fn python() -> Policy {
    if let Some(p) = PYTHON.with(|c| c.get().cloned()) {
        return p;
    }
    pause().await;
    let p = Policy::new(files_js(), "python").unwrap_or_else(|e| panic!("{e:?}"));
    PYTHON.with(|c| c.set(p.clone()).ok());
    pause().await;
    p
}
