//! Milliseconds from a monotonic clock: `performance.now()` in the browser (window or
//! worker), `std::time::Instant` natively. `std::time::Instant::now()` panics on
//! `wasm32-unknown-unknown`, so nothing in this crate calls it there.

/// Milliseconds since an arbitrary origin (only differences are meaningful).
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    use wasm_bindgen::JsCast;
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
    perf.and_then(|p| {
        let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
        let f: js_sys::Function = now.dyn_into().ok()?;
        f.call0(&p).ok()?.as_f64()
    })
    .unwrap_or_else(js_sys::Date::now)
}

/// Milliseconds since the first call (only differences are meaningful).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// Registers [`now_ms`] as ward-policy's clock on wasm (its compile-time budget); idempotent.
pub fn install() {
    ward_policy::clock::set_wasm_clock(now_ms);
}
