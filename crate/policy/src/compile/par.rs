//! A parallel map over scoped worker threads (the calling thread is one of them), used for
//! the independent per-rule builds and products.

/// `f` over `items` on `workers` threads (items are taken in order as workers become free);
/// results in item order.
pub(super) fn par_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= items.len() {
                break;
            }
            mine.push((i, f(&items[i])));
        }
        mine
    };
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        // The calling thread is one of the workers, so a thread that cannot be started
        // (resource limits) only means less parallelism.
        let handles: Vec<_> = (1..workers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        let mut parts = vec![work()];
        parts.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
        );
        parts
    });
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every item is processed once"))
        .collect()
}
