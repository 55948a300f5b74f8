//! Fuzz the model loader: `config.json` text, a NUL byte, then the bytes of a safetensors
//! file, through `ModelConfig::from_json_str`, `WeightSource::from_bytes` and
//! `build_transformer`: a model or a clear error, never a panic, and no allocation larger
//! than a small multiple of the input (a config must not make the loader reserve memory the
//! file does not back). The check is shared with the regression test of the findings
//! (`crate/model/tests/fuzz/loader.rs`); the allocation bound is checked here, where a
//! counting allocator can be installed.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz/loader.rs"]
mod check;

/// The system allocator, recording the largest single request.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

fuzz_target!(|data: &[u8]| {
    LARGEST.store(0, Ordering::Relaxed);
    check::run(data);
    // f16/bf16 tensors become f32 (twice their bytes), and a tensor may be copied once on
    // its way to the device: 4× the input, plus a fixed allowance for the library's own
    // buffers.
    let bound = 4 * data.len() + (1 << 20);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= bound,
        "an allocation of {largest} bytes for an input of {} bytes",
        data.len()
    );
});
