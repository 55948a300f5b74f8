//! A monotonic clock for the compile-time budget that works on every target.
//!
//! On `wasm32-unknown-unknown` the standard library has no clock (`std::time::Instant::now`
//! panics there), and this crate knows nothing of JavaScript. The embedder registers one
//! with [`set_wasm_clock`] (ward-web passes `performance.now`); until one is registered,
//! time there stands still, so the time limit is not enforced (the state and byte limits
//! still are). Elsewhere [`Instant`] is `std::time::Instant`.

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub(crate) use std::time::Instant;

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub(crate) use wasm::Instant;

/// Registers the clock used for compile-time budgets on `wasm32-unknown-unknown`:
/// milliseconds from a monotonic origin (e.g. `performance.now()`). A no-op elsewhere.
pub fn set_wasm_clock(now_ms: fn() -> f64) {
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    let _ = wasm::CLOCK.set(now_ms);
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    let _ = now_ms;
}

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod wasm {
    use std::sync::OnceLock;
    use std::time::Duration;

    pub(super) static CLOCK: OnceLock<fn() -> f64> = OnceLock::new();

    /// A point in time, in milliseconds of the registered clock (0 without one).
    #[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
    pub(crate) struct Instant(f64);

    impl Instant {
        /// Now.
        pub(crate) fn now() -> Instant {
            Instant(CLOCK.get().map(|f| f()).unwrap_or(0.0))
        }

        /// Time since `self` (zero without a registered clock).
        pub(crate) fn elapsed(&self) -> Duration {
            Duration::from_secs_f64(((Instant::now().0 - self.0) / 1e3).max(0.0))
        }
    }
}
